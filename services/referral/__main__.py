from services.referral.app import create_app
from services.referral.settings import ReferralSettings
from shared.runtime import serve

settings = ReferralSettings()
serve(create_app(settings), settings)

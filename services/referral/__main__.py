from services.referral.settings import ReferralSettings
from shared.runtime import serve

serve("services.referral.app:create_app", ReferralSettings())

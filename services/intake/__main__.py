from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.runtime import serve

settings = IntakeSettings()
serve(create_app(settings), settings)

from services.intake.settings import IntakeSettings
from shared.runtime import serve

serve("services.intake.app:create_app", IntakeSettings())

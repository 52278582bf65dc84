from services.reporting.settings import ReportingSettings
from shared.runtime import serve

serve("services.reporting.app:create_app", ReportingSettings())

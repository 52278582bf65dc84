from services.reporting.settings import ReportingSettings
from shared.runtime import serve

if __name__ == "__main__":  # not when a rebuild's spreading process is spawned from this process
    serve("services.reporting.app:create_app", ReportingSettings())

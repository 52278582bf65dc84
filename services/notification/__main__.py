from services.notification.settings import NotificationSettings
from shared.runtime import serve

serve("services.notification.app:create_app", NotificationSettings())

from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from chat import accounts, signals

        # Logout, password change, deactivation, deletion: sockets closed, tokens refused.
        accounts.connect_signals()
        # A deleted read receipt (its user or room deleted) leaves readCount's histogram.
        signals.connect_signals()

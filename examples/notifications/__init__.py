"""The notification-store recipe (QuVel's ``useNotificationStore``), end to end.

The store itself ships with quvel as :mod:`quvel.demo.notifications` (``quvel demo`` runs it, so it must
be installed code); read it there, and ``docs/recipes/notifications.md`` for the walk-through.
``python examples/notifications`` runs it against the embedded server and a simulated Laravel back end.
"""

from quvel.demo.notifications import Notification, NotificationState, NotificationStore

__all__ = ["Notification", "NotificationState", "NotificationStore"]

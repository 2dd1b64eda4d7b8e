"""quvel_ui: bind quvel stores to Python front ends, the way a Vue component binds a Pinia store.

- :mod:`quvel_ui.textual` (``pip install quvel[textual]``): widgets and reactive attributes follow a
  ``store.select(...)``; the widget's lifetime owns the subscription.
- :mod:`quvel_ui.nicegui` (``pip install quvel[nicegui]``): elements follow a selection, per browser
  client or shared; a client's stores are released when the client goes away.

Both sit on the public store API only (``select``, ``observe``, ``subscribe``, actions); importing
``quvel_ui`` itself loads neither framework.
"""

from quvel_ui._binding import Binding, BindingError, Target

__all__ = ["Binding", "BindingError", "Target"]

"""quvel_store: Pinia-style typed stores (pydantic state, getters, actions) with an injected service container."""

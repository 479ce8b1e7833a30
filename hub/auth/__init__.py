"""Bearer access tokens: who calls the hub, with which scopes, within which budgets."""

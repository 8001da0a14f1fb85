"""Users: the account model, its wire format and the permission checks routes declare."""

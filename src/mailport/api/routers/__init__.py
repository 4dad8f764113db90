"""One router module per feature; each is thin: validate, call the service layer, render."""

"""One screen per module: the unlock screen, the six areas, help and dialogs."""

"""SentiCompare core: everything the stage notebooks call lives here."""

"""Applications: thin arrangements of library calls that people start from the command line."""

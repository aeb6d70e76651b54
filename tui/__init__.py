"""The terminal front end: the Textual debugger and the command line."""

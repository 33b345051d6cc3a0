"""One module per command (or command group); ``cli`` registers them."""

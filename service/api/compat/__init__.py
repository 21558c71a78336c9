"""Other services' APIs, served by this one, so their clients switch by changing only the URL."""

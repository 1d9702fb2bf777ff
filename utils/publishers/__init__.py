"""Publishers: where an app goes (GitHub, or the embedded local git host) and what every published repository holds."""

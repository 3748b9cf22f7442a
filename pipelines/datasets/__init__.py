"""Raw days to land: synthetic logs at any scale, MovieLens and Amazon importers."""

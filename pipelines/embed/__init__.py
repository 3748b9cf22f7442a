"""The language-model side: texts, the encoder, its cache and the user-interest memory."""

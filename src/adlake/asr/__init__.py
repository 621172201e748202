"""Speech recognition of ad voiceovers: sentences and words with timestamps."""

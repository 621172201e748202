"""From an edit plan back to a finished ad: resolve the plan against the lake, narrate it, place the
subtitles and render one MP4 through one ffmpeg filter graph (``adlake render``)."""

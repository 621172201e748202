"""Media shared by the stages: the content-addressed store and safe probing with ffprobe."""

"""ads_parse: videos → soundtrack, ASR, shots, clips, 1 fps frames and views."""

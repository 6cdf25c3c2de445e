"""Audio plumbing shared by the server, the backends and the clients.

16-bit little-endian mono PCM everywhere: 16 kHz towards the model, 24 kHz
back from it. Resampling uses soxr (a maintained, band-limited resampler),
never a hand-rolled interpolation.
"""

"""Back-translation (issue 21): a photo -> artist-sketch model gives every face photo artist-style
sketches, so the sketch -> photo model trains on far more pairs that look like the forensic input.

- :mod:`sketch2face.data.artist_styles`: the artist drawing styles and their condition vectors;
- :mod:`.sketcher`: :class:`PhotoSketcher`, a trained photo -> sketch checkpoint for inference;
- :mod:`sketch2face.data.artist_sketches`: the ``prepare`` pass that draws the training photos.
"""

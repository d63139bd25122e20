"""The HTML pages: sign-in and accounts (``auth``), the studio and history (``studio``), cases and
candidate rounds (``cases``, ``candidates``, ``appeal_sheets``), the verify page and gallery
search (``verify``, ``gallery``)."""

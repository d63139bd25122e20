"""Who may do what over HTTP: passwords and API token hashing (``passwords``), browser sessions
(``sessions``), API tokens (``tokens``), sign-in throttling (``throttle``), response headers
(``headers``) and the per-object access checks that answer 404 (``access``)."""

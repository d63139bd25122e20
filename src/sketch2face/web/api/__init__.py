"""The JSON API under ``/api/v1``: token authentication (``auth``), generations
(``generations``), cases (``cases``), gallery search (``gallery``). Each module registers its part
of the OpenAPI document with ``openapi.register``; ``openapi`` assembles and serves it."""

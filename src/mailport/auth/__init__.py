"""Host applications' own user tokens (JWTs) as credentials, per tenant (issue 19).

* :mod:`mailport.auth.models` — a tenant's verifier (:class:`JwtVerifier`), no I/O;
* :mod:`mailport.auth.schemas` — the verifier's request/response bodies (:class:`JwtSettings`);
* :mod:`mailport.auth.tokens` — telling a JWT from an API key, reading its header unverified;
* :mod:`mailport.auth.repository` — the ``tenant_jwt`` table (the secret encrypted);
* :mod:`mailport.auth.jwks` — a JWKS cache fetched through the host guard;
* :mod:`mailport.auth.verify` — PyJWT's verification, its failures mapped to stable codes;
* :mod:`mailport.auth.service` — which tenant a token belongs to, and its owner.
"""

"""Microsoft Graph connector (``graph``): a small typed client for the mail endpoints of Graph
v1.0 (:mod:`.client`), its data types (:mod:`.models`), and the connector built on them."""

"""The HTTP floor: what every router shares, and nothing of any domain.

- ``transaction``: the request's read or write session and when it commits;
- ``line_writer``: the group commit of the factory line's writes on SQLite;
- ``bodies``: JSON objects, text and the upload form;
- ``caller``: the bearer token, the client's address, the caller protocol;
- ``streaming``: heavy reads streamed under a per-OEM bound;
- ``errors``: AFS error bodies for every exception;
- ``middleware``: request id, access log, metrics, early size and time limits.

The caller's identity (accounts.access) and the master keyring (keys.access) are
dependencies of the domains above, built on this floor.
"""

"""What the notification and the messages keep of a URL."""

from __future__ import annotations

from strongroom_notify.urls import redact, strip_password, where


class TestUrls:
    def test_strip_password_keeps_the_user_and_drops_password_and_query(self):
        """A vault URL loses its password and query string, keeps scheme, user, host, port and path."""
        assert strip_password("sftp://bob:pw@nas:2222/vaults/main?key=abc") == "sftp://bob@nas:2222/vaults/main"
        assert strip_password("s3://bucket/vault") == "s3://bucket/vault"

    def test_strip_password_leaves_local_paths_alone(self):
        """A local folder is not a URL and stays as it is."""
        assert strip_password("/srv/vaults/main") == "/srv/vaults/main"

    def test_redact_masks_password_and_query_values(self):
        """redact shows the password and every query value as ***."""
        assert redact("https://u:p@h.example:8443/x?token=abc&a=1") == "https://u:***@h.example:8443/x?token=***&a=***"
        assert redact("https://h.example/x") == "https://h.example/x"

    def test_where_is_host_and_port_only(self):
        """where names the host (and port) and nothing of user, path or query."""
        assert where("https://u:p@hooks.example.net/T0/B1/s3cret?x=1") == "hooks.example.net"
        assert where("http://[::1]:8080/x") == "[::1]:8080"

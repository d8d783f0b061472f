"""The runner side: the wire protocol and a reference runner service hosting agents."""

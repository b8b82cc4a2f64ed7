"""The live dashboard: a page that shows every node as it is, fed over Server-Sent Events from the
same MQTT topics Home Assistant and `indisync status` read. Standard library only (see server.py)."""

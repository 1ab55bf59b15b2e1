"""The durable queues between the platforms and the crew: the ingress (access check, inbox row) and the send
worker (outbox). The bus uses the channels' types (channels/messages.py, channels/base.py); channels never
import the bus."""

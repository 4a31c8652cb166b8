"""What the control service, the edge and the actors share: configuration, error codes and
credential handling. Nothing here imports a transport or database library."""

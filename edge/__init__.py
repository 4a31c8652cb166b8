"""The aiohttp edge: candidate pages, redemption, client secrets and the candidate WebSocket."""

"""PixSim's Qt-free domain: database models, services, providers, transfers, media and search."""

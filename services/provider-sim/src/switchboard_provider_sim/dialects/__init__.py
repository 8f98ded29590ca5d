"""The three APIs the simulator speaks: its native one, Vocode's and Voxpria's."""

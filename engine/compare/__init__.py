"""Two recorded runs side by side: which steps correspond, where they part, and the summary."""

print("webhooky")

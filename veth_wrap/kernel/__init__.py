"""Reading the kernel into the model's fact types: namespaces, links, routes, labs, tc, caps."""

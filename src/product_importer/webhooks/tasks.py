"""Background work for this domain, registered with the task dispatch seam."""

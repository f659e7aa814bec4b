package com.heymax.lakehouse.serving;

/** A statement that reads a table, column or rows its user is not granted; the message names them. */
public final class AccessDeniedException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public AccessDeniedException(String message) {
        super(message);
    }
}

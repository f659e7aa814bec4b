package com.heymax.lakehouse.serving;

/** A client statement that would change data or metadata; the message says what to do instead. */
public final class ReadOnlyException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public ReadOnlyException(String message) {
        super(message);
    }
}

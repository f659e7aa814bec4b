package com.heymax.lakehouse.serving;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.attribute.FileTime;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.Base64;
import java.security.SecureRandom;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import javax.crypto.Mac;
import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.SecretKeySpec;
import javax.crypto.spec.PBEKeySpec;
import javax.security.sasl.AuthenticationException;

import org.apache.hive.service.auth.PasswdAuthenticationProvider;

/**
 * The Thrift server's password check ({@code hive.server2.authentication=CUSTOM}) against a file of
 * salted PBKDF2-HMAC-SHA256 hashes, one user per line:
 *
 * <pre>name:pbkdf2_sha256:iterations:salt-base64:hash-base64</pre>
 *
 * The file (system property {@code lakehouse.thrift.users}) is written by {@code lakehouse thrift
 * add-user} with mode 600; it is read again whenever it changes, so a user added or removed counts
 * from the next connection, without a restart. Unknown users, wrong passwords and empty user names
 * or passwords (anonymous sessions) are refused with the same message.
 *
 * <p>Over the HTTP transport (TLS) every request of a client carries its password (PyHive and Superset keep
 * no session cookie): a password that passed is remembered, as an HMAC under a key made at the server's
 * start, until the users file changes, so the slow PBKDF2 check runs once per user and password rather than
 * on every request.
 */
public final class PasswordFileAuthenticator implements PasswdAuthenticationProvider {

    public static final String USERS_FILE_PROPERTY = "lakehouse.thrift.users";
    private static final String SCHEME = "pbkdf2_sha256";
    private static final String REFUSED = "invalid user name or password";

    private static final Object LOCK = new Object();
    private static Path loadedPath;
    private static FileTime loadedModified;
    private static long loadedSize = -1;
    private static Map<String, String[]> users = new HashMap<>();
    /** HMACs of (user, password) pairs that passed since the users file was last read. */
    private static final Set<String> VERIFIED = new HashSet<>();
    private static final int MAX_VERIFIED = 10_000;
    private static final byte[] PROCESS_KEY = new byte[32];

    static {
        new SecureRandom().nextBytes(PROCESS_KEY);
    }

    @Override
    public void Authenticate(String user, String password) throws AuthenticationException {
        if (user == null || user.isEmpty() || password == null || password.isEmpty()) {
            throw new AuthenticationException("anonymous sessions are not allowed: give a user name and password");
        }
        // The message reaches the server log only (the client hears "Error validating the login").
        String refused = REFUSED + " (login as '" + user + "' refused)";
        String[] entry = load().get(user);
        if (entry == null) {
            throw new AuthenticationException(refused);
        }
        String remembered = remembered(user, password);
        synchronized (LOCK) {
            if (VERIFIED.contains(remembered)) {
                return;
            }
        }
        try {
            int iterations = Integer.parseInt(entry[0]);
            byte[] salt = Base64.getDecoder().decode(entry[1]);
            byte[] expected = Base64.getDecoder().decode(entry[2]);
            PBEKeySpec spec = new PBEKeySpec(password.toCharArray(), salt, iterations, expected.length * 8);
            byte[] actual = SecretKeyFactory.getInstance("PBKDF2WithHmacSHA256").generateSecret(spec).getEncoded();
            spec.clearPassword();
            if (!MessageDigest.isEqual(expected, actual)) {
                throw new AuthenticationException(refused);
            }
            synchronized (LOCK) {
                if (users.get(user) == entry) {  // not a password the file changed under us
                    if (VERIFIED.size() >= MAX_VERIFIED) {
                        VERIFIED.clear();
                    }
                    VERIFIED.add(remembered);
                }
            }
        } catch (GeneralSecurityException | IllegalArgumentException e) {
            throw new AuthenticationException("the users file has a bad entry for " + user + ": " + e.getMessage());
        }
    }

    private static Map<String, String[]> load() throws AuthenticationException {
        String configured = System.getProperty(USERS_FILE_PROPERTY);
        if (configured == null || configured.isEmpty()) {
            throw new AuthenticationException("server misconfigured: no users file (" + USERS_FILE_PROPERTY + ")");
        }
        Path path = Paths.get(configured);
        synchronized (LOCK) {
            try {
                FileTime modified = Files.getLastModifiedTime(path);
                long size = Files.size(path);
                if (!path.equals(loadedPath) || !modified.equals(loadedModified) || size != loadedSize) {
                    users = parse(Files.readAllLines(path, StandardCharsets.UTF_8));
                    VERIFIED.clear();
                    loadedPath = path;
                    loadedModified = modified;
                    loadedSize = size;
                }
                return users;
            } catch (IOException e) {
                throw new AuthenticationException("cannot read the users file " + path + ": " + e);
            }
        }
    }

    private static String remembered(String user, String password) throws AuthenticationException {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(PROCESS_KEY, "HmacSHA256"));
            mac.update(user.getBytes(StandardCharsets.UTF_8));
            mac.update((byte) 0);
            return Base64.getEncoder().encodeToString(mac.doFinal(password.getBytes(StandardCharsets.UTF_8)));
        } catch (GeneralSecurityException e) {
            throw new AuthenticationException("HmacSHA256 unavailable: " + e);
        }
    }

    static Map<String, String[]> parse(List<String> lines) {
        Map<String, String[]> parsed = new HashMap<>();
        for (String line : lines) {
            String trimmed = line.trim();
            if (trimmed.isEmpty() || trimmed.startsWith("#")) {
                continue;
            }
            String[] parts = trimmed.split(":");
            if (parts.length == 5 && SCHEME.equals(parts[1])) {
                parsed.put(parts[0], new String[] {parts[2], parts[3], parts[4]});
            }
        }
        return parsed;
    }
}

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
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import javax.crypto.SecretKeyFactory;
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

/*
 * anonlib's bind shim: Orthanc 1.10.1 has no option to choose the address its DICOM port listens
 * on (it binds every address of the machine). Loaded with LD_PRELOAD by `anonlib constellation up`,
 * this bind() rewrites a bind to the wildcard address (0.0.0.0, or :: for IPv6) on one of the ports
 * in ANONLIB_BIND_PORTS (comma-separated) to ANONLIB_BIND_ADDRESS (an IPv4 or IPv6 address; an IPv4
 * one is given to an IPv6 socket as ::ffff:a.b.c.d). Every other bind passes through unchanged.
 * Fails closed: a listed wildcard bind with a missing or unusable ANONLIB_BIND_ADDRESS fails with
 * EADDRNOTAVAIL, so the port is never opened on every address by mistake.
 *
 * Built by env/bindshim/build (run by env/setup and by `constellation up`).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

static int port_listed(unsigned port) {
    const char *p = getenv("ANONLIB_BIND_PORTS");
    if (p == NULL) return 0;
    while (*p) {
        char *end;
        unsigned long value = strtoul(p, &end, 10);
        if (end != p && value == port) return 1;
        p = (*end == ',') ? end + 1 : (end == p ? p + 1 : end);
    }
    return 0;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real_bind = NULL;
    if (real_bind == NULL) {
        real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
        if (real_bind == NULL) { errno = ENOSYS; return -1; }
    }
    if (addr == NULL) return real_bind(fd, addr, len);
    const char *address = getenv("ANONLIB_BIND_ADDRESS");
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in in;
        memcpy(&in, addr, sizeof in);
        if (in.sin_addr.s_addr != htonl(INADDR_ANY) || !port_listed(ntohs(in.sin_port)))
            return real_bind(fd, addr, len);
        if (address == NULL || inet_pton(AF_INET, address, &in.sin_addr) != 1) {
            errno = EADDRNOTAVAIL;
            return -1;
        }
        return real_bind(fd, (const struct sockaddr *)&in, sizeof in);
    }
    if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, addr, sizeof in6);
        if (!IN6_IS_ADDR_UNSPECIFIED(&in6.sin6_addr) || !port_listed(ntohs(in6.sin6_port)))
            return real_bind(fd, addr, len);
        struct in_addr v4;
        if (address != NULL && inet_pton(AF_INET6, address, &in6.sin6_addr) == 1)
            return real_bind(fd, (const struct sockaddr *)&in6, sizeof in6);
        if (address != NULL && inet_pton(AF_INET, address, &v4) == 1) {
            memset(&in6.sin6_addr, 0, sizeof in6.sin6_addr);
            in6.sin6_addr.s6_addr[10] = 0xff;
            in6.sin6_addr.s6_addr[11] = 0xff;
            memcpy(&in6.sin6_addr.s6_addr[12], &v4, 4);
            return real_bind(fd, (const struct sockaddr *)&in6, sizeof in6);
        }
        errno = EADDRNOTAVAIL;
        return -1;
    }
    return real_bind(fd, addr, len);
}

#ifndef CLIBXML2_SHIM_H
#define CLIBXML2_SHIM_H
/* libxml2 2.9 (Debian libxml2-dev). Its headers live in /usr/include/libxml2, which the pkg-config file
   `libxml-2.0` adds to the include path (Package.swift: pkgConfig "libxml-2.0"). Only the XML module imports this. */
/* Debian's libxml2 is built with ICU, so encoding.h would include <unicode/ucnv.h>, whose UErrorCode clashes with the
   copy in Foundation's _FoundationICU in any module that sees both. Nothing here uses the ICU converter fields (only
   pointers to xmlCharEncodingHandler cross into Swift), so the ICU part of the headers is switched off. */
#include <libxml/xmlversion.h>
#undef LIBXML_ICU_ENABLED
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/SAX2.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

/* libxml2's generic error handler is variadic, which Swift cannot implement; these helpers do it in C. */
static inline void kbridge_xml_ignore_generic_error(void *context, const char *message, ...) {
    (void)context;
    (void)message;
}

static inline void kbridge_xml_ignore_structured_error(void *context, xmlErrorPtr error) {
    (void)context;
    (void)error;
}

/* Installs no-op handlers for the calling thread (libxml2 2.9 built with threads keeps them in per-thread state), so that
   nothing libxml2 reports outside a parser or XPath context (which have their own handlers) reaches stderr. */
static inline void kbridge_xml_silence_thread_errors(void) {
    xmlSetGenericErrorFunc(NULL, kbridge_xml_ignore_generic_error);
    xmlSetStructuredErrorFunc(NULL, kbridge_xml_ignore_structured_error);
}
#endif

// Internal to src/pki: CSR validation that hands the parsed request to the signer.
#pragma once

#include <optional>
#include <string_view>

#include "pki/csr.hpp"
#include "pki/mbed_util.hpp"

namespace cx::pki::detail {

// validate_csr(), leaving the parsed request in `csr` for sign_csr().
Result<CsrInfo> parse_and_validate_csr(const Csr& csr, std::string_view csr_pem,
                                       std::optional<std::string_view> expected_cn);

// The subject attribute the signer copies: the first CN, with its string type.
const mbedtls_x509_name* csr_cn_attribute(const mbedtls_x509_csr* csr);

} // namespace cx::pki::detail

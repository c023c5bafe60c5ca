import Delivery
import Testing

@Suite struct RedactionTests {
    @Test(arguments: [
        ("https://h/p?apikey=k3y&id=7", "https://h/p?apikey=***&id=7"),
        ("https://h/p?id=7&APIKey=k3y", "https://h/p?id=7&APIKey=***"),
        ("https://h/?key=a&token=b&api_key=c&secret=d&password=e&access_token=f&auth=g&signature=h",
         "https://h/?key=***&token=***&api_key=***&secret=***&password=***&access_token=***&auth=***&signature=***"),
        ("https://h/?api%5Fkey=c", "https://h/?api%5Fkey=***"),
        ("https://h/?api-key=K1&client_secret=S2&auth_token=T3&access_key=A4&x.sig=5&id=6",
         "https://h/?api-key=***&client_secret=***&auth_token=***&access_key=***&x.sig=***&id=6"),
        ("https://h/?monkey=1&keys=2&tokenizer=3", "https://h/?monkey=1&keys=2&tokenizer=3"),
        // camelCase names, as many APIs spell them: a capital starts a word too.
        ("https://h/?accessToken=T1&clientSecret=S2&authToken=T3&privateKey=K4&APIKey=K5&userPassword=P6&designId=7&hotkeys=8",
         "https://h/?accessToken=***&clientSecret=***&authToken=***&privateKey=***&APIKey=***&userPassword=***&designId=7&hotkeys=8"),
        ("https://h/?sessionTOKEN=T&myAPIToken=U&apiKey2=V&id=1", "https://h/?sessionTOKEN=***&myAPIToken=***&apiKey2=***&id=1"),
        ("https://h/?auth[token]=T&credentials%5Bpassword%5D=P&md5=m", "https://h/?auth[token]=***&credentials%5Bpassword%5D=***&md5=m"),
        ("https://h/?token=", "https://h/?token="),
        ("https://h/?token", "https://h/?token"),
        ("https://h/?a=1&&token=x#token=frag", "https://h/?a=1&&token=***#token=frag"),
        ("https://h/path/token=abc", "https://h/path/token=abc"),
        ("https://bob:pa55@h:8443/p?x=1", "https://bob:***@h:8443/p?x=1"),
        ("https://sk_live_4f2a@h/p", "https://***@h/p"),
        ("https://@h/p", "https://@h/p"),
        ("https://h/p?email=a%40b.cz", "https://h/p?email=a%40b.cz"),
        ("https://h/p?next=https://x:y@z/", "https://h/p?next=https://x:y@z/"),
    ])
    func urls(url: String, shown: String) {
        #expect(Redaction.url(url) == shown)
    }

    @Test(arguments: [
        ("Authorization", "Bearer eshop-42-token", "Bearer ***"),
        ("authorization", "Basic dXNlcjpwYXNz", "Basic ***"),
        ("Authorization", "s3cr3t", "***"),
        ("Proxy-Authorization", "Basic x", "Basic ***"),
        ("X-Api-Key", "k3y", "***"),
        ("X-Auth-Token", "Token abc def", "Token ***"),
        ("X-Client-Secret", "abc", "***"),
        ("X-Password", "hunter2", "***"),
        ("X-Passwd", "hunter2", "***"),
        ("X-Credentials", "abc", "***"),
        ("X-Auth", "s3cret", "***"),
        ("X-Hub-Signature-256", "sha256=abc", "***"),
        ("Api-Auth", "Bearer x y", "Bearer ***"),
        ("Cookie", "session=abc; theme=dark", "***"),
        ("Authorization", "key=abc; more", "***"),
        ("X-Token", "", ""),
        ("X-Shop", "eshop-42", "eshop-42"),
        ("Content-Type", "application/json", "application/json"),
        ("webhook-signature", "v1,abc=", "v1,abc="),
    ])
    func headers(name: String, value: String, shown: String) {
        #expect(Redaction.headerValue(name: name, value: value) == shown)
    }

    @Test func secretHeadersAndParametersAreRecognisedWithoutRegardToCase() {
        #expect(Redaction.isSecretHeader("AUTHORIZATION"))
        #expect(Redaction.isSecretHeader("x-API-KEY"))
        #expect(!Redaction.isSecretHeader("X-Request-Id"))
        #expect(Redaction.isSecretParameter("ACCESS_TOKEN"))
        #expect(Redaction.isSecretParameter("accessToken"))
        #expect(!Redaction.isSecretParameter("id"))
    }
}

@Suite struct ConfigurableRedactionTests {
    @Test func extraParameterNamesAreMaskedToo() {
        #expect(Redaction.url("https://h/p?checksum=abc&Hash=def&id=7&apikey=k", extraParameters: ["checksum", "hash"]) == "https://h/p?checksum=***&Hash=***&id=7&apikey=***")
        #expect(Redaction.url("https://h/p?checksum=abc") == "https://h/p?checksum=abc")
    }
}

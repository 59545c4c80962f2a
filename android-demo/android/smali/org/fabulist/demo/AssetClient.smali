# Serves https://appassets.androidplatform.net/<path> from the APK's assets/www/<path> (the origin that
# androidx's WebViewAssetLoader reserves for this), and refuses every other address: the app has no
# network permission and needs none. Real https URLs rather than file:// keep the web platform's rules
# (module workers, fetch) as they are in a browser.
#
#   public class AssetClient extends WebViewClient {
#       static final String HOST = "appassets.androidplatform.net";
#       private final AssetManager assets;
#       public AssetClient(AssetManager assets) { this.assets = assets; }
#       public boolean shouldOverrideUrlLoading(WebView v, WebResourceRequest r) {
#           return !HOST.equals(r.getUrl().getHost());             // links elsewhere go nowhere
#       }
#       public WebResourceResponse shouldInterceptRequest(WebView v, WebResourceRequest r) {
#           Uri url = r.getUrl();
#           if (!HOST.equals(url.getHost())) return empty(403, "Forbidden");
#           String path = url.getPath() == null ? "/" : url.getPath();
#           if (path.endsWith("/")) path = path + "index.html";
#           try { return respond(mimeType(path), 200, "OK", assets.open("www" + path)); }
#           catch (IOException e) { return empty(404, "Not Found"); }
#       }
#       static WebResourceResponse respond(String mime, int status, String reason, InputStream data) {
#           Map<String, String> h = new HashMap<>();   // cross-origin isolation: wasm threads
#           h.put("Cross-Origin-Opener-Policy", "same-origin");
#           h.put("Cross-Origin-Embedder-Policy", "require-corp");
#           return new WebResourceResponse(mime, null, status, reason, h, data);
#       }
#       static String mimeType(String path) { ... by extension, as scripts/serve.mjs does ... }
#   }
.class public Lorg/fabulist/demo/AssetClient;
.super Landroid/webkit/WebViewClient;
.source "AssetClient.smali"


.field private final assets:Landroid/content/res/AssetManager;


.method public constructor <init>(Landroid/content/res/AssetManager;)V
    .registers 2

    invoke-direct {p0}, Landroid/webkit/WebViewClient;-><init>()V
    iput-object p1, p0, Lorg/fabulist/demo/AssetClient;->assets:Landroid/content/res/AssetManager;
    return-void
.end method


.method public shouldOverrideUrlLoading(Landroid/webkit/WebView;Landroid/webkit/WebResourceRequest;)Z
    .registers 5

    invoke-interface {p2}, Landroid/webkit/WebResourceRequest;->getUrl()Landroid/net/Uri;
    move-result-object v0
    invoke-virtual {v0}, Landroid/net/Uri;->getHost()Ljava/lang/String;
    move-result-object v0
    const-string v1, "appassets.androidplatform.net"
    invoke-virtual {v1, v0}, Ljava/lang/String;->equals(Ljava/lang/Object;)Z
    move-result v0
    xor-int/lit8 v0, v0, 0x1
    return v0
.end method


.method public shouldInterceptRequest(Landroid/webkit/WebView;Landroid/webkit/WebResourceRequest;)Landroid/webkit/WebResourceResponse;
    .registers 8

    invoke-interface {p2}, Landroid/webkit/WebResourceRequest;->getUrl()Landroid/net/Uri;
    move-result-object v0
    invoke-virtual {v0}, Landroid/net/Uri;->getHost()Ljava/lang/String;
    move-result-object v1
    const-string v2, "appassets.androidplatform.net"
    invoke-virtual {v2, v1}, Ljava/lang/String;->equals(Ljava/lang/Object;)Z
    move-result v1
    if-eqz v1, :refuse

    invoke-virtual {v0}, Landroid/net/Uri;->getPath()Ljava/lang/String;
    move-result-object v1
    if-nez v1, :have_path
    const-string v1, "/"

    :have_path
    const-string v2, "/"
    invoke-virtual {v1, v2}, Ljava/lang/String;->endsWith(Ljava/lang/String;)Z
    move-result v2
    if-eqz v2, :named
    new-instance v2, Ljava/lang/StringBuilder;
    invoke-direct {v2}, Ljava/lang/StringBuilder;-><init>()V
    invoke-virtual {v2, v1}, Ljava/lang/StringBuilder;->append(Ljava/lang/String;)Ljava/lang/StringBuilder;
    const-string v3, "index.html"
    invoke-virtual {v2, v3}, Ljava/lang/StringBuilder;->append(Ljava/lang/String;)Ljava/lang/StringBuilder;
    invoke-virtual {v2}, Ljava/lang/StringBuilder;->toString()Ljava/lang/String;
    move-result-object v1

    :named
    new-instance v2, Ljava/lang/StringBuilder;
    const-string v3, "www"
    invoke-direct {v2, v3}, Ljava/lang/StringBuilder;-><init>(Ljava/lang/String;)V
    invoke-virtual {v2, v1}, Ljava/lang/StringBuilder;->append(Ljava/lang/String;)Ljava/lang/StringBuilder;
    invoke-virtual {v2}, Ljava/lang/StringBuilder;->toString()Ljava/lang/String;
    move-result-object v2
    invoke-static {v1}, Lorg/fabulist/demo/AssetClient;->mimeType(Ljava/lang/String;)Ljava/lang/String;
    move-result-object v3

    :try_start
    iget-object v4, p0, Lorg/fabulist/demo/AssetClient;->assets:Landroid/content/res/AssetManager;
    invoke-virtual {v4, v2}, Landroid/content/res/AssetManager;->open(Ljava/lang/String;)Ljava/io/InputStream;
    move-result-object v4
    :try_end
    .catch Ljava/io/IOException; {:try_start .. :try_end} :missing

    const/16 v2, 0xc8
    const-string v0, "OK"
    invoke-static {v3, v2, v0, v4}, Lorg/fabulist/demo/AssetClient;->respond(Ljava/lang/String;ILjava/lang/String;Ljava/io/InputStream;)Landroid/webkit/WebResourceResponse;
    move-result-object v0
    return-object v0

    :missing
    const/16 v2, 0x194
    const-string v0, "Not Found"
    goto :empty

    :refuse
    const/16 v2, 0x193
    const-string v0, "Forbidden"

    :empty
    const-string v3, "text/plain"
    const/4 v1, 0x0
    new-array v1, v1, [B
    new-instance v4, Ljava/io/ByteArrayInputStream;
    invoke-direct {v4, v1}, Ljava/io/ByteArrayInputStream;-><init>([B)V
    invoke-static {v3, v2, v0, v4}, Lorg/fabulist/demo/AssetClient;->respond(Ljava/lang/String;ILjava/lang/String;Ljava/io/InputStream;)Landroid/webkit/WebResourceResponse;
    move-result-object v0
    return-object v0
.end method


.method static respond(Ljava/lang/String;ILjava/lang/String;Ljava/io/InputStream;)Landroid/webkit/WebResourceResponse;
    .registers 11

    new-instance v5, Ljava/util/HashMap;
    invoke-direct {v5}, Ljava/util/HashMap;-><init>()V
    const-string v1, "Cross-Origin-Opener-Policy"
    const-string v2, "same-origin"
    invoke-interface {v5, v1, v2}, Ljava/util/Map;->put(Ljava/lang/Object;Ljava/lang/Object;)Ljava/lang/Object;
    const-string v1, "Cross-Origin-Embedder-Policy"
    const-string v2, "require-corp"
    invoke-interface {v5, v1, v2}, Ljava/util/Map;->put(Ljava/lang/Object;Ljava/lang/Object;)Ljava/lang/Object;

    new-instance v0, Landroid/webkit/WebResourceResponse;
    move-object v1, p0
    const/4 v2, 0x0
    move v3, p1
    move-object v4, p2
    move-object v6, p3
    invoke-direct/range {v0 .. v6}, Landroid/webkit/WebResourceResponse;-><init>(Ljava/lang/String;Ljava/lang/String;ILjava/lang/String;Ljava/util/Map;Ljava/io/InputStream;)V
    return-object v0
.end method


.method static mimeType(Ljava/lang/String;)Ljava/lang/String;
    .registers 2

    const-string v0, ".html"
    invoke-virtual {p0, v0}, Ljava/lang/String;->endsWith(Ljava/lang/String;)Z
    move-result v0
    if-eqz v0, :not_0
    const-string v0, "text/html"
    return-object v0
    :not_0

    const-string v0, ".js"
    invoke-virtual {p0, v0}, Ljava/lang/String;->endsWith(Ljava/lang/String;)Z
    move-result v0
    if-eqz v0, :not_1
    const-string v0, "text/javascript"
    return-object v0
    :not_1

    const-string v0, ".mjs"
    invoke-virtual {p0, v0}, Ljava/lang/String;->endsWith(Ljava/lang/String;)Z
    move-result v0
    if-eqz v0, :not_2
    const-string v0, "text/javascript"
    return-object v0
    :not_2

    const-string v0, ".css"
    invoke-virtual {p0, v0}, Ljava/lang/String;->endsWith(Ljava/lang/String;)Z
    move-result v0
    if-eqz v0, :not_3
    const-string v0, "text/css"
    return-object v0
    :not_3

    const-string v0, ".json"
    invoke-virtual {p0, v0}, Ljava/lang/String;->endsWith(Ljava/lang/String;)Z
    move-result v0
    if-eqz v0, :not_4
    const-string v0, "application/json"
    return-object v0
    :not_4

    const-string v0, ".webmanifest"
    invoke-virtual {p0, v0}, Ljava/lang/String;->endsWith(Ljava/lang/String;)Z
    move-result v0
    if-eqz v0, :not_5
    const-string v0, "application/manifest+json"
    return-object v0
    :not_5

    const-string v0, ".wasm"
    invoke-virtual {p0, v0}, Ljava/lang/String;->endsWith(Ljava/lang/String;)Z
    move-result v0
    if-eqz v0, :not_6
    const-string v0, "application/wasm"
    return-object v0
    :not_6

    const-string v0, ".png"
    invoke-virtual {p0, v0}, Ljava/lang/String;->endsWith(Ljava/lang/String;)Z
    move-result v0
    if-eqz v0, :not_7
    const-string v0, "image/png"
    return-object v0
    :not_7

    const-string v0, ".svg"
    invoke-virtual {p0, v0}, Ljava/lang/String;->endsWith(Ljava/lang/String;)Z
    move-result v0
    if-eqz v0, :not_8
    const-string v0, "image/svg+xml"
    return-object v0
    :not_8

    const-string v0, ".txt"
    invoke-virtual {p0, v0}, Ljava/lang/String;->endsWith(Ljava/lang/String;)Z
    move-result v0
    if-eqz v0, :not_9
    const-string v0, "text/plain"
    return-object v0
    :not_9

    const-string v0, "application/octet-stream"
    return-object v0
.end method

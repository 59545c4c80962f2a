# The one screen: a WebView that opens the web app from the APK's own assets (see AssetClient).
#
#   public class MainActivity extends Activity {
#       protected void onCreate(Bundle state) {
#           super.onCreate(state);
#           WebView web = new WebView(this);
#           WebSettings s = web.getSettings();
#           s.setJavaScriptEnabled(true); s.setDomStorageEnabled(true);
#           s.setAllowFileAccess(false); s.setAllowContentAccess(false);
#           web.setWebViewClient(new AssetClient(getAssets()));
#           setContentView(web);
#           web.loadUrl(AssetClient.ORIGIN + "index.html");
#       }
#   }
.class public Lorg/fabulist/demo/MainActivity;
.super Landroid/app/Activity;
.source "MainActivity.smali"


.method public constructor <init>()V
    .registers 1

    invoke-direct {p0}, Landroid/app/Activity;-><init>()V
    return-void
.end method


.method protected onCreate(Landroid/os/Bundle;)V
    .registers 5

    invoke-super {p0, p1}, Landroid/app/Activity;->onCreate(Landroid/os/Bundle;)V

    new-instance v0, Landroid/webkit/WebView;
    invoke-direct {v0, p0}, Landroid/webkit/WebView;-><init>(Landroid/content/Context;)V

    invoke-virtual {v0}, Landroid/webkit/WebView;->getSettings()Landroid/webkit/WebSettings;
    move-result-object v1
    const/4 v2, 0x1
    invoke-virtual {v1, v2}, Landroid/webkit/WebSettings;->setJavaScriptEnabled(Z)V
    invoke-virtual {v1, v2}, Landroid/webkit/WebSettings;->setDomStorageEnabled(Z)V
    const/4 v2, 0x0
    invoke-virtual {v1, v2}, Landroid/webkit/WebSettings;->setAllowFileAccess(Z)V
    invoke-virtual {v1, v2}, Landroid/webkit/WebSettings;->setAllowContentAccess(Z)V

    new-instance v1, Lorg/fabulist/demo/AssetClient;
    invoke-virtual {p0}, Lorg/fabulist/demo/MainActivity;->getAssets()Landroid/content/res/AssetManager;
    move-result-object v2
    invoke-direct {v1, v2}, Lorg/fabulist/demo/AssetClient;-><init>(Landroid/content/res/AssetManager;)V
    invoke-virtual {v0, v1}, Landroid/webkit/WebView;->setWebViewClient(Landroid/webkit/WebViewClient;)V

    invoke-virtual {p0, v0}, Lorg/fabulist/demo/MainActivity;->setContentView(Landroid/view/View;)V

    const-string v1, "https://appassets.androidplatform.net/index.html"
    invoke-virtual {v0, v1}, Landroid/webkit/WebView;->loadUrl(Ljava/lang/String;)V
    return-void
.end method

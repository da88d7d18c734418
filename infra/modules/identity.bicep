// User-assigned managed identity for the function app: the only identity the app uses, for host
// storage, deployment storage, the router's tables, Azure OpenAI and Application Insights.

param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
